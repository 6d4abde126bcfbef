"""Personal-data categories and purposes of the W3C Data Privacy Vocabulary 2.2 (w3c/dpv f01a55c3,
2.2/pd/pd.ttl and the dpv:Purpose subtree and data classes of 2.2/dpv/dpv.ttl; W3C Software and
Document Licence), rendered from vocab/dpv/dpv-2.2.json by scripts/dpv_extract.py --python: do not
edit by hand. Two tables, one concept a line, that vocab.concept_table reads (its docstring says how).
"""

from __future__ import annotations

from .vocab import concept_table

_PERSONAL_DATA_TABLE = """\
dpv:AnonymisedData | dpv:NonPersonalData | Anonymised Data
dpv:Data |  | Data
dpv:NonPersonalData | dpv:Data | Non-Personal Data
dpv:PersonalData | dpv:Data | Personal Data
dpv:PseudonymisedData | dpv:PersonalData | Pseudonymised Data
dpv:SensitivePersonalData | dpv:PersonalData dpv:SensitiveData | Sensitive Personal Data
dpv:SpecialCategoryPersonalData | dpv:SensitivePersonalData | Special Category Personal Data
pd:Accent | pd:Language | Accent
pd:AccountIdentifier | pd:FinancialAccount | Account Identifier
pd:Acquaintance | pd:SocialNetwork | Acquaintance
pd:Age | pd:PhysicalCharacteristic | Age
pd:AgeExact | pd:AgeRange | Age Exact
pd:AgeRange | pd:Age | Age Range
pd:ApartmentOwned | pd:HouseOwned | Apartment Owned
pd:Association | pd:SocialNetwork | Association
pd:Attitude | pd:Behavioural | Attitude
pd:Authenticating | pd:Internal | Authenticating
pd:AuthenticationHistory | pd:Behavioural | Authentication History
pd:BankAccount | pd:FinancialAccount | Bank Account
pd:Behavioural | pd:External | Behavioural
pd:Biometric | dpv:SpecialCategoryPersonalData pd:Identifying | Biometric | special
pd:BirthCountry | pd:BirthPlace | Birth Country
pd:BirthDate | pd:Age | Birth Date
pd:BirthPlace | pd:Location | Birth Place
pd:BloodType | pd:MedicalHealth | Blood Type | special
pd:BrowserFingerprint | pd:DeviceBased | Browser Fingerprint
pd:BrowserHistory | pd:BrowsingBehaviour | Browser History
pd:BrowsingBehaviour | pd:Behavioural | Browsing Behaviour
pd:BrowsingReferral | pd:BrowsingBehaviour | Browsing Referral
pd:CallLog | pd:Behavioural | Call Log
pd:CarOwned | pd:Ownership | Car Owned
pd:Character | pd:PublicLife | Character
pd:Citizenship | pd:External | Citizenship
pd:City | pd:PhysicalAddress | City
pd:Communication | pd:Social | Communication
pd:CommunicationsMetadata | pd:PublicLife | Communications Metadata
pd:Connection | pd:SocialNetwork | Connection
pd:Contact | pd:Tracking | Contact
pd:Country | pd:Location | Country
pd:Credit | pd:Transactional | Credit
pd:CreditCapacity | pd:Credit | Credit Capacity
pd:CreditCardNumber | pd:PaymentCardNumber | Credit Card Number
pd:CreditRecord | pd:Credit | Credit Record
pd:CreditScore | pd:CreditWorthiness | Credit Score
pd:CreditStanding | pd:Credit | Credit Standing
pd:CreditWorthiness | pd:Credit | Credit Worthiness
pd:Criminal | pd:Social | Criminal
pd:CriminalCharge | pd:Criminal | Criminal Charge
pd:CriminalConviction | pd:Criminal | Criminal Conviction
pd:CriminalOffence | pd:Criminal | Criminal Offence
pd:CriminalPardon | pd:Criminal | Criminal Pardon
pd:CurrentEmployment | pd:EmploymentHistory | Current Employment
pd:DNACode | pd:MedicalHealth | DNA Code | special
pd:Demeanour | pd:Behavioural | Demeanour
pd:Demographic | pd:External | Demographic
pd:DeviceApplications | pd:DeviceSoftware | Device Applications
pd:DeviceBased | pd:Tracking | Device Based
pd:DeviceOperatingSystem | pd:DeviceSoftware | Device Operating System
pd:DeviceSoftware | pd:DeviceBased | Device Software
pd:Dialect | pd:Language | Dialect
pd:DigitalFingerprint | pd:Tracking | Digital Fingerprint
pd:Disability | pd:MedicalHealth | Disability | special
pd:DisciplinaryAction | pd:Professional | Disciplinary Action
pd:Dislike | pd:Interest | Dislike
pd:Divorce | pd:FamilyStructure | Divorce
pd:Domicile | pd:Location | Domicile
pd:DrugTestResult | pd:MedicalHealth | Drug Test Result | special
pd:Education | pd:Professional | Education
pd:EducationExperience | pd:Education | Education Experience
pd:EducationQualification | pd:Education | Education Qualification
pd:EmailAddress | pd:Contact | Email Address
pd:EmailAddressPersonal | pd:EmailAddress | Email Address Personal
pd:EmailAddressWork | pd:EmailAddress | Email Address Work
pd:EmailContent | pd:Communication | Email Content
pd:Emotion | pd:Internal | Emotion
pd:EmploymentHistory | pd:Professional | Employment History
pd:EthnicOrigin | dpv:SpecialCategoryPersonalData pd:Ethnicity | Ethnic Origin | special
pd:Ethnicity | pd:External | Ethnicity
pd:External | dpv:PersonalData | External
pd:FacialExpression | pd:Biometric | Facial Expression | special
pd:FacialPrint | pd:Biometric | Facial Print | special
pd:Family | pd:Social | Family
pd:FamilyHealthHistory | pd:HealthHistory | Family Health History | special
pd:FamilyStructure | pd:Family | Family Structure
pd:Favourite | pd:Preference | Favourite
pd:FavouriteColour | pd:Favourite | Favourite Colour
pd:FavouriteFood | pd:Favourite | Favourite Food
pd:FavouriteMusic | pd:Favourite | Favourite Music
pd:Fetish | pd:Sexual | Fetish | special
pd:Financial | dpv:PersonalData | Financial
pd:FinancialAccount | pd:Financial | Financial Account
pd:FinancialAccountNumber | pd:AccountIdentifier | Financial Account Number
pd:FinancialStatus | pd:Financial | Financial Status
pd:Fingerprint | pd:Biometric | Fingerprint | special
pd:Friend | pd:SocialNetwork | Friend
pd:GPSCoordinate | pd:Location | GPS Coordinate
pd:Gender | pd:PhysicalCharacteristic | Gender
pd:GeneralReputation | pd:PublicLife | General Reputation
pd:Genetic | pd:Health | Genetic | special
pd:Geographic | pd:Demographic | Geographic
pd:GroupMembership | pd:SocialNetwork | Group Membership
pd:GroupProfile | pd:Profile | Group Profile
pd:HairColour | pd:PhysicalCharacteristic | Hair Colour
pd:Health | pd:MedicalHealth | Health | special
pd:HealthHistory | pd:MedicalHealth | Health History | special
pd:HealthRecord | pd:MedicalHealth | Health Record | special
pd:Height | pd:PhysicalCharacteristic | Height
pd:Historical | dpv:PersonalData | Historical
pd:HouseNumber | pd:PhysicalAddress | House Number
pd:HouseOwned | pd:Ownership | House Owned
pd:Household | dpv:PersonalData | Household
pd:IPAddress | pd:DeviceBased | IP Address
pd:Identifier | pd:Tracking | Identifier
pd:Identifying | pd:External | Identifying
pd:Income | pd:Transactional | Income
pd:IncomeBracket | pd:Demographic | Income Bracket
pd:IndividualHealthHistory | pd:HealthHistory | Individual Health History | special
pd:IndividualProfile | pd:Profile | Individual Profile
pd:Insurance | pd:Financial | Insurance
pd:Intention | pd:Preference | Intention
pd:Interaction | pd:PublicLife | Interaction
pd:Interest | pd:Preference | Interest
pd:Internal | dpv:PersonalData | Internal
pd:Job | pd:Professional | Job
pd:KnowledgeBelief | pd:Internal | Knowledge and Beliefs
pd:Language | pd:External | Language
pd:LifeHistory | pd:Historical | Life History
pd:Like | pd:Interest | Like
pd:LinkClicked | pd:Behavioural | Link Clicked
pd:LoanRecord | pd:Transactional | Loan Record
pd:Locality | pd:PhysicalAddress | Locality
pd:Location | pd:Tracking | Location
pd:MACAddress | pd:DeviceBased | MAC Address
pd:MaritalStatus | pd:PublicLife | Marital Status
pd:Marriage | pd:FamilyStructure | Marriage
pd:MedicalHealth | dpv:SpecialCategoryPersonalData pd:External | Medical Health | special
pd:MentalHealth | pd:Health | Mental Health | special
pd:Mood | pd:Internal | Mood
pd:Name | pd:Identifying | Name
pd:Nationality | pd:External | Nationality
pd:OfficialID | pd:Identifying | Official ID
pd:Offspring | pd:FamilyStructure | Offspring
pd:Opinion | pd:Preference | Opinion
pd:Ownership | pd:Financial | Ownership
pd:PINCode | pd:Authenticating | PIN Code
pd:Parent | pd:FamilyStructure | Parent
pd:Passport | pd:OfficialID | Passport
pd:Password | pd:Authenticating | Password
pd:PastEmployment | pd:EmploymentHistory | Past Employment
pd:PaymentCard | pd:FinancialAccount | Payment Card
pd:PaymentCardExpiry | pd:PaymentCard | Payment Card Expiry
pd:PaymentCardNumber | pd:AccountIdentifier pd:PaymentCard | Payment Card Number
pd:PerformanceAtWork | pd:Behavioural pd:Professional | Performance at Work
pd:PersonalDocuments | pd:External | Personal Documents
pd:PersonalPossession | pd:Ownership | Personal Possession
pd:Personality | pd:Behavioural | Personality
pd:PhilosophicalBelief | dpv:SpecialCategoryPersonalData pd:KnowledgeBelief | Philosophical Belief | special
pd:PhysicalAddress | pd:Contact pd:Location | Physical Address
pd:PhysicalCharacteristic | pd:External | Physical Characteristic
pd:PhysicalHealth | pd:Health | Physical Health | special
pd:PhysicalTrait | pd:Demographic | Physical Trait
pd:Picture | pd:Identifying | Picture
pd:Piercing | pd:PhysicalCharacteristic | Piercing
pd:PoliticalAffiliation | dpv:SpecialCategoryPersonalData pd:PublicLife | Political Affiliation | special
pd:PoliticalOpinion | dpv:SpecialCategoryPersonalData pd:PublicLife | Political Opinion | special
pd:PostalCode | pd:PhysicalAddress | Postal Code
pd:Preference | pd:Internal | Preference
pd:Prescription | pd:MedicalHealth | Prescription | special
pd:PrivacyPreference | pd:Preference | Privacy Preference
pd:Proclivity | pd:Sexual | Proclivity | special
pd:Professional | pd:Social | Professional
pd:ProfessionalCertification | pd:Professional | Professional Certification
pd:ProfessionalEvaluation | pd:Professional | Professional Evaluation
pd:ProfessionalInterview | pd:Professional | Professional Interview
pd:Profile | dpv:PersonalData | Profile
pd:PublicLife | pd:Social | Public Life
pd:PubliclyAvailableSocialMedia | pd:SocialMedia | Publicly Available Social Media
pd:Purchase | pd:Transactional | Purchase
pd:PurchasesAndSpendingHabit | pd:Transactional | Purchases and Spending Habit
pd:Race | dpv:SpecialCategoryPersonalData pd:Ethnicity | Race | special
pd:Reference | pd:Professional | Reference
pd:Region | pd:PhysicalAddress | Region
pd:Relationship | pd:Family | Relationship
pd:Reliability | pd:Behavioural | Reliability
pd:Religion | dpv:SpecialCategoryPersonalData pd:PublicLife | Religion | special
pd:ReligiousBelief | dpv:SpecialCategoryPersonalData pd:KnowledgeBelief | Religious Belief | special
pd:Residency | pd:Location | Residency
pd:Retina | pd:Biometric | Retina | special
pd:RoomNumber | pd:PhysicalAddress | Room Number
pd:Salary | pd:Professional | Salary
pd:Sale | pd:Transactional | Sale
pd:School | pd:Professional | School
pd:SecretText | pd:Authenticating | Secret Text
pd:ServiceConsumptionBehaviour | pd:Behavioural | Service Consumption Behaviour
pd:Sexual | dpv:SpecialCategoryPersonalData pd:External | Sexual | special
pd:SexualHistory | pd:Sexual | Sexual History | special
pd:SexualPreference | pd:Sexual | Sexual Preference | special
pd:Sibling | pd:FamilyStructure | Sibling
pd:SkinTone | pd:PhysicalCharacteristic | Skin Tone
pd:Social | dpv:PersonalData | Social
pd:SocialMedia | pd:Communication | Social Media
pd:SocialMediaCommunication | pd:Communication | Social Media Communication
pd:SocialNetwork | pd:Social | Social Network
pd:SocialStatus | pd:PublicLife | Social Status
pd:Street | pd:PhysicalAddress | Street
pd:TVViewingBehaviour | pd:ServiceConsumptionBehaviour | TV Viewing Behaviour
pd:Tattoo | pd:PhysicalCharacteristic | Tattoo
pd:Tax | pd:Transactional | Tax
pd:TelephoneNumber | pd:Contact | Telephone Number
pd:Thought | pd:KnowledgeBelief | Thought
pd:Tracking | dpv:PersonalData | Tracking
pd:TradeUnionMembership | dpv:SpecialCategoryPersonalData pd:GroupMembership | Trade Union Membership | special
pd:Transaction | pd:Transactional | Transaction
pd:Transactional | pd:Financial | Transactional
pd:TravelHistory | pd:Location | Travel History
pd:UID | pd:Identifying | UID
pd:UserAgent | pd:Tracking | User agent
pd:Username | pd:Identifying | Username
pd:VehicalLicenseNumber | pd:VehicleLicense | Vehicle License Number
pd:VehicalLicenseRegistration | pd:VehicleLicense | Vehicle License Registration
pd:Vehicle | pd:External | Vehicle
pd:VehicleLicense | pd:Identifying pd:Vehicle | Vehicle License
pd:VehicleUsage | pd:Behavioural pd:Vehicle | Vehicle Usage
pd:VoiceCommunicationRecording | pd:Communication | Voice Communication Recording
pd:VoiceMail | pd:Communication | Voice Mail
pd:Weight | pd:PhysicalCharacteristic | Weight
pd:WorkEnvironment | pd:Professional | Work Environment
pd:WorkHistory | pd:Professional | Work History
"""

_PURPOSES_TABLE = """\
dpv:AcademicResearch | dpv:ResearchAndDevelopment | Academic Research
dpv:AccountManagement | dpv:Purpose | Account Management
dpv:Advertising | dpv:Marketing | Advertising
dpv:AgeVerification | dpv:Verification | Age Verification
dpv:CombatClimateChange | dpv:PublicBenefit | Combat Climate Change
dpv:CommercialPurpose | dpv:Purpose | Commercial Purpose
dpv:CommercialResearch | dpv:CommercialPurpose dpv:ResearchAndDevelopment | Commercial Research
dpv:CommunicationForCustomerCare | dpv:CommunicationManagement dpv:CustomerCare | Communication for Customer Care
dpv:CommunicationManagement | dpv:Purpose | Communication Management
dpv:CounterMoneyLaundering | dpv:FraudPreventionAndDetection | Counter Money Laundering
dpv:Counterterrorism | dpv:PublicBenefit | Counterterrorism
dpv:CustomerCare | dpv:CustomerManagement | Customer Care
dpv:CustomerClaimsManagement | dpv:CustomerManagement | Customer Claims Management
dpv:CustomerManagement | dpv:Purpose | Customer Management
dpv:CustomerOrderManagement | dpv:CustomerManagement | Customer Order Management
dpv:CustomerRelationshipManagement | dpv:CustomerManagement | Customer Relationship Management
dpv:CustomerSolvencyMonitoring | dpv:CustomerManagement | Customer Solvency Monitoring
dpv:DataAltruism | dpv:PublicBenefit | Data Altruism
dpv:DataGovernance | dpv:OrganisationGovernance | Data Governance
dpv:DataInteroperabilityAssessment | dpv:DataInteroperabilityManagement | Data Interoperability Assessment
dpv:DataInteroperabilityImprovement | dpv:DataInteroperabilityManagement | Data Interoperability Improvement
dpv:DataInteroperabilityManagement | dpv:DataGovernance | Data Interoperability Management
dpv:DataInventoryManagement | dpv:DataGovernance | Data Inventory Management
dpv:DataQualityAssessment | dpv:DataQualityManagement | Data Quality Assessment
dpv:DataQualityImprovement | dpv:DataQualityManagement | Data Quality Improvement
dpv:DataQualityManagement | dpv:DataGovernance | Data Quality Management
dpv:DataSecurityManagement | dpv:DataGovernance | Data Security Management
dpv:DeliveryOfGoods | dpv:RequestedServiceProvision | Delivery of Goods
dpv:DirectMarketing | dpv:Marketing | Direct Marketing
dpv:DisputeManagement | dpv:OrganisationGovernance | Dispute Management
dpv:EnforceAccessControl | dpv:EnforceSecurity | Enforce Access Control
dpv:EnforceSecurity | dpv:Purpose | Enforce Security
dpv:EstablishContractualAgreement | dpv:Purpose | Establish Contractual Agreement
dpv:FraudPreventionAndDetection | dpv:MisusePreventionAndDetection | Fraud Prevention and Detection
dpv:FulfilmentOfContractualObligation | dpv:FulfilmentOfObligation | Fulfilment of Contractual Obligation
dpv:FulfilmentOfObligation | dpv:Purpose | Fulfilment of Obligation
dpv:HumanResourceManagement | dpv:Purpose | Human Resource Management
dpv:IdentityAuthentication | dpv:EnforceSecurity | Identity Authentication
dpv:IdentityVerification | dpv:Verification | Identity Verification
dpv:ImproveExistingProductsAndServices | dpv:OptimisationForController | Improve Existing Products and Services
dpv:ImproveHealthcare | dpv:PublicBenefit | Improve Healthcare
dpv:ImproveInternalCRMProcesses | dpv:CustomerRelationshipManagement dpv:OptimisationForController | Improve Internal CRM Processes
dpv:ImprovePublicServices | dpv:PublicBenefit | Improve Public Services
dpv:ImproveTransportMobility | dpv:PublicBenefit | Improve Transport and Mobility
dpv:IncreaseServiceRobustness | dpv:OptimisationForController | Increase Service Robustness
dpv:InternalResourceOptimisation | dpv:OptimisationForController | Internal Resource Optimisation
dpv:LegalCompliance | dpv:FulfilmentOfObligation | Legal Compliance
dpv:MaintainFraudDatabase | dpv:FraudPreventionAndDetection | Maintain Fraud Database
dpv:Marketing | dpv:Purpose | Marketing
dpv:MemberPartnerManagement | dpv:OrganisationGovernance | Members and Partners Management
dpv:MetadataManagement | dpv:DataGovernance | Metadata Management
dpv:MisusePreventionAndDetection | dpv:EnforceSecurity | Misuse, Prevention and Detection
dpv:NonCommercialPurpose | dpv:Purpose | Non-commercial Purpose
dpv:NonCommercialResearch | dpv:NonCommercialPurpose dpv:ResearchAndDevelopment | Non-Commercial Research
dpv:OptimisationForConsumer | dpv:ServiceOptimisation | Optimisation for Consumer
dpv:OptimisationForController | dpv:ServiceOptimisation | Optimisation for Controller
dpv:OptimiseUserInterface | dpv:OptimisationForConsumer | Optimise User Interface
dpv:OrganisationComplianceManagement | dpv:OrganisationGovernance | Organisation Compliance Management
dpv:OrganisationGovernance | dpv:Purpose | Organisation Governance
dpv:OrganisationRiskManagement | dpv:OrganisationGovernance | Organisation Risk Management
dpv:PaymentManagement | dpv:ServiceProvision | Payment Management
dpv:Personalisation | dpv:Purpose | Personalisation
dpv:PersonalisedAdvertising | dpv:Advertising dpv:Personalisation | Personalised Advertising
dpv:PersonalisedBenefits | dpv:ServicePersonalisation | Personalised Benefits
dpv:PersonnelBehaviourMonitoring | dpv:PersonnelMonitoring | Personnel Behaviour Monitoring
dpv:PersonnelHiring | dpv:PersonnelManagement | Personnel Hiring
dpv:PersonnelManagement | dpv:HumanResourceManagement | Personnel Management
dpv:PersonnelMonitoring | dpv:PersonnelManagement | Personnel Monitoring
dpv:PersonnelOffboarding | dpv:PersonnelManagement | Personnel Offboarding
dpv:PersonnelOnboarding | dpv:PersonnelHiring | Personnel Onboarding
dpv:PersonnelPayment | dpv:PersonnelManagement | Personnel Payment
dpv:PersonnelPerformanceEvaluation | dpv:PersonnelPerformanceManagement | Personnel Performance Evaluation
dpv:PersonnelPerformanceManagement | dpv:PersonnelManagement dpv:PersonnelMonitoring | Personnel Performance Management
dpv:PersonnelPerformanceMonitoring | dpv:PersonnelMonitoring dpv:PersonnelPerformanceManagement | Personnel Performance Monitoring
dpv:PersonnelPerformancePrediction | dpv:PersonnelPerformanceManagement | Personnel Performance Prediction
dpv:PersonnelPromotionManagement | dpv:PersonnelManagement | Personnel Promotion Management
dpv:PersonnelTerminationManagement | dpv:PersonnelManagement | Personnel Termination Management
dpv:PersonnelWorkloadManagement | dpv:PersonnelManagement | Personnel Workload Management
dpv:PoliticalCampaign | dpv:Advertising dpv:Personalisation | Political Campaign
dpv:ProtectionOfIPR | dpv:FulfilmentOfObligation | Protection of Intellectual Property Rights
dpv:ProtectionOfNationalSecurity | dpv:PublicBenefit | Protection of National Security
dpv:ProtectionOfPublicSecurity | dpv:PublicBenefit | Protection of Public Security
dpv:ProvideEventRecommendations | dpv:ProvidePersonalisedRecommendations | Provide Event Recommendations
dpv:ProvideOfficialStatistics | dpv:PublicBenefit | Provide Official Statistics
dpv:ProvidePersonalisedRecommendations | dpv:ServicePersonalisation | Provide Personalised Recommendations
dpv:ProvideProductRecommendations | dpv:ProvidePersonalisedRecommendations | Provide Product Recommendations
dpv:PublicBenefit | dpv:Purpose | Public Benefit
dpv:PublicPolicyMaking | dpv:PublicBenefit | Public Policy Making
dpv:PublicRelations | dpv:Marketing | Public Relations
dpv:Purpose |  | Purpose
dpv:RecordManagement | dpv:Purpose | Record Management
dpv:RecruitmentAdvertising | dpv:Advertising dpv:PersonnelHiring | Recruitment Advertising
dpv:RecruitmentApplicantBackgroundCheck | dpv:RecruitmentManagement | Recruitment Applicant Background Check
dpv:RecruitmentApplicantCriminalBackgroundCheck | dpv:RecruitmentManagement | Recruitment Applicant Criminal Background Check
dpv:RecruitmentApplicantInformationAuthentication | dpv:RecruitmentManagement | Recruitment Applicant Information Authentication
dpv:RecruitmentApplicantSelection | dpv:RecruitmentManagement | Recruitment Applicant Selection
dpv:RecruitmentApplicationAnalysis | dpv:RecruitmentApplicationManagement | Recruitment Application Analysis
dpv:RecruitmentApplicationManagement | dpv:RecruitmentManagement | Recruitment Application Management
dpv:RecruitmentApplicationScreening | dpv:RecruitmentApplicationManagement | Recruitment Application Screening
dpv:RecruitmentInterviewAnalysis | dpv:RecruitmentInterviewManagement | Recruitment Interview Analysis
dpv:RecruitmentInterviewAssessment | dpv:RecruitmentInterviewManagement | Recruitment Interview Assessment
dpv:RecruitmentInterviewManagement | dpv:RecruitmentManagement | Recruitment Interview Management
dpv:RecruitmentInterviewScheduling | dpv:RecruitmentInterviewManagement | Recruitment Interview Scheduling
dpv:RecruitmentManagement | dpv:PersonnelHiring | Recruitment Management
dpv:RecruitmentTargetedAdvertising | dpv:RecruitmentAdvertising dpv:TargetedAdvertising | Targeted Recruitment Advertising
dpv:RepairImpairments | dpv:ServiceProvision | Repair Impairments
dpv:RequestedServiceProvision | dpv:ServiceProvision | Requested Service Provision
dpv:ResearchAndDevelopment | dpv:Purpose | Research and Development
dpv:ScientificResearch | dpv:ResearchAndDevelopment | Scientific Research
dpv:SearchFunctionalities | dpv:ServiceProvision | Search Functionalities
dpv:SellDataToThirdParties | dpv:SellProducts | Sell Data to Third Parties
dpv:SellInsightsFromData | dpv:SellProducts | Sell Insights from Data
dpv:SellProducts | dpv:ServiceProvision | Sell Products
dpv:SellProductsToDataSubject | dpv:SellProducts | Sell Products to Data Subject
dpv:ServiceOptimisation | dpv:ServiceProvision | Service Optimisation
dpv:ServicePersonalisation | dpv:Personalisation dpv:ServiceProvision | Service Personalisation
dpv:ServiceProvision | dpv:Purpose | Service Provision
dpv:ServiceRegistration | dpv:ServiceProvision | Service Registration
dpv:ServiceUsageAnalytics | dpv:ServiceProvision | Service Usage Analytics
dpv:SocialMediaMarketing | dpv:Marketing | Social Media Marketing
dpv:TargetedAdvertising | dpv:PersonalisedAdvertising | Targeted Advertising
dpv:TechnicalServiceProvision | dpv:ServiceProvision | Technical Service Provision
dpv:UserInterfacePersonalisation | dpv:ServicePersonalisation | User Interface Personalisation
dpv:VendorManagement | dpv:Purpose | Vendor Management
dpv:VendorPayment | dpv:VendorManagement | Vendor Payment
dpv:VendorRecordsManagement | dpv:VendorManagement | Vendor Records Management
dpv:VendorSelectionAssessment | dpv:VendorManagement | Vendor Selection Assessment
dpv:Verification | dpv:EnforceSecurity | Verification
"""

PERSONAL_DATA: dict[str, tuple[tuple[str, ...], str, bool]] = concept_table(_PERSONAL_DATA_TABLE)
PURPOSES: dict[str, tuple[tuple[str, ...], str]] = {
    iri: (broader, label) for iri, (broader, label, _) in concept_table(_PURPOSES_TABLE).items()
}
